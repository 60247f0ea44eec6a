"""One TCP connection: the RFC 9293 state machine, sans-IO.

Read first: RFC 9293 §3.3.2 (states), §3.10.7 (SEGMENT ARRIVES — the order of
the checks in :meth:`TcpConnection.segment_arrives` follows it), RFC 5961
(blind attacks), RFC 7323 (window scaling, timestamps, PAWS), RFC 2018 and
RFC 6675 (SACK), RFC 6298 (RTO), RFC 5681/6582 (congestion control, NewReno).

The connection is also the user's sans-IO socket: ``send`` appends to the send
buffer, ``recv`` takes from the receive buffer, ``shutdown``/``close``/``abort``
end it.  None of these emits a segment directly; they ask the interface for a
``flush`` at the next poll, so back-to-back writes coalesce.  Incoming
segments are handled at once and may emit ACKs and data immediately.

Sequence numbers are kept *unwrapped* (see :mod:`seqs.tcp.seq`): SND.UNA,
SND.NXT, RCV.NXT and friends are plain ints, compared with ``<``.

What this module leaves to others: demultiplexing, listeners, RSTs for
unknown connections and the ISN secret live in :mod:`seqs.sockets.tcp`;
building IP packets and everything below is the interface's.
"""

from __future__ import annotations

import copy
import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._typing import BytesLike
from ..errors import oserror
from ..iface.notify import Notifier
from ..wire import tcp as wtcp
from ..wire.checksum import checksum, fold, pseudo_header_sum, word_sum
from ..wire.ipv4 import PROTO_TCP
from ..wire.virtio import F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4
from ..wire.virtio import HDR as _VNET
from .congestion import ALGORITHMS, CongestionControl
from .rtt import RttEstimator
from .seq import unwrap, wrap
from .trace import describe_bytes

if TYPE_CHECKING:
    from ..sockets.tcp import TcpTable

__all__ = [
    "CLOSED",
    "CLOSE_WAIT",
    "CLOSING",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "LAST_ACK",
    "LISTEN",
    "STATE_NAMES",
    "SYN_RECEIVED",
    "SYN_SENT",
    "TIME_WAIT",
    "TcpConfig",
    "TcpConnection",
    "window_shift",
]

# RFC 9293 §3.3.2.  Plain ints: compared on every segment.
CLOSED = 0
LISTEN = 1
SYN_SENT = 2
SYN_RECEIVED = 3
ESTABLISHED = 4
FIN_WAIT_1 = 5
FIN_WAIT_2 = 6
CLOSE_WAIT = 7
CLOSING = 8
LAST_ACK = 9
TIME_WAIT = 10
STATE_NAMES = (
    "CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
    "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
)
#: states in which we may send data (our side is not closed yet)
_CAN_SEND = frozenset({ESTABLISHED, CLOSE_WAIT})
#: states in which queued data (or our FIN) may still go out
_SENDS_DATA = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, LAST_ACK, CLOSING})
#: states in which a flush sends nothing at all
_NO_OUTPUT = frozenset({CLOSED, LISTEN, SYN_SENT, TIME_WAIT})
#: states that accept segment text (RFC 9293 §3.10.7.4, seventh step)
_TAKES_TEXT = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
_SYNCHRONIZED = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT})

SYN, ACK, FIN, RST, PSH = wtcp.SYN, wtcp.ACK, wtcp.FIN, wtcp.RST, wtcp.PSH
_HDR = wtcp.HDR
_TS_OPT = struct.Struct("!BBBBII")  # NOP NOP TS 10 tsval tsecr
_SACK_BLOCK = struct.Struct("!II")
_TS_HEAD = b"\x01\x01\x08\x0a"
_TS_WORDS = struct.Struct("!III")  # the same 12 bytes as three words
_TS_KINDS = 0x0101080A  # NOP NOP TS 10
_MASK = 0xFFFFFFFF
_HALF = 0x80000000
#: Ethernet header + IPv4 version/IHL and TOS (16 bytes, per connection), then the
#: rest of the IPv4 header: total length, identification, DF/TTL/protocol, checksum, addresses
_IP_HEAD = struct.Struct("!16sHH4sH8s")
#: the same followed by a TCP header without options, and with the timestamp option
_FRAME = struct.Struct("!16sHH4sH8sHHIIBBHHH")
_FRAME_TS = struct.Struct("!16sHH4sH8sHHIIBBHHHIII")
_TS_KINDS_SUM = 0x0101 + 0x080A  # the option's kind/length words, as the checksum sums them
_U16 = struct.Struct("!H")
#: virtio-net header of a checksum-offloaded, unsegmented TCP frame: the checksum
#: starts after Ethernet+IPv4 (14+20) and sits 16 bytes into the TCP header
_CSUM_META = _VNET.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, 34, 16, 0)
#: largest TCP payload in one super-segment: the IPv4 total length is 16 bits
_TSO_MAX = 65535 - 20 - 60


@dataclass(slots=True)
class TcpConfig:
    """Per-connection settings; a listener's config is copied to the connections it accepts."""

    #: receive buffer (bytes): the most we advertise and hold, in order or not
    rcvbuf: int = 256 * 1024
    #: send buffer (bytes): unacknowledged plus unsent data
    sndbuf: int = 256 * 1024
    #: disable Nagle's algorithm (RFC 9293 §3.7.4), like TCP_NODELAY
    nodelay: bool = False
    #: delayed-ACK timer (RFC 9293 §3.8.6.3: under 0.5 s); 0 disables delayed ACKs
    delayed_ack: float = 0.04
    rto_initial: float = 1.0
    #: RFC 6298 asks for 1 s; like Linux we default to 200 ms (configurable)
    rto_min: float = 0.2
    rto_max: float = 60.0
    #: retransmissions of one segment before the connection fails with ETIMEDOUT
    max_retries: int = 12
    syn_retries: int = 6
    #: maximum segment lifetime; TIME-WAIT lasts 2*MSL (RFC 9293 §3.4.2)
    msl: float = 30.0
    #: after close(), how long FIN-WAIT-2 may wait for the peer's FIN
    fin_wait2_timeout: float = 60.0
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    congestion: str = "cubic"
    #: out-of-order segments held per connection (beyond this they are dropped, counted)
    max_ooo_segments: int = 64
    #: our MSS; None derives it from the interface MTU (MTU - 40)
    mss: int | None = None
    ttl: int | None = None
    tos: int = 0

    def copy(self) -> TcpConfig:
        """An independent copy (each connection owns one): ``copy.copy``, not
        ``dataclasses.replace``, which re-validates and costs twice as much per SYN."""
        return copy.copy(self)

    def __post_init__(self) -> None:
        if self.rcvbuf < 1024 or self.sndbuf < 1024:
            raise ValueError("buffers must be at least 1024 bytes")
        if self.rcvbuf > (1 << 30) or self.sndbuf > (1 << 30):
            raise ValueError("buffers are limited to 1 GiB (window scale 14)")
        if self.congestion not in ALGORITHMS:
            raise ValueError(f"unknown congestion control {self.congestion!r}; have {sorted(ALGORITHMS)}")
        if self.mss is not None and not 88 <= self.mss <= 65495:
            raise ValueError("MSS out of range")


def window_shift(rcvbuf: int) -> int:
    """The window scale we offer (RFC 7323 §2.3): the least shift that lets the
    16-bit window field show the whole receive buffer, at most 14."""
    shift = 0
    while (65535 << shift) < rcvbuf and shift < 14:
        shift += 1
    return shift


class _Options:
    """What a SYN or SYN-ACK told us."""

    __slots__ = ("mss", "sack_permitted", "timestamp", "wscale")

    def __init__(self, o: wtcp.TcpOptions) -> None:
        self.mss = o.mss
        self.wscale = o.wscale
        self.sack_permitted = o.sack_permitted
        self.timestamp = o.timestamp


class TcpConnection(Notifier):
    """A TCP connection and its sans-IO socket API.  See the module docstring."""

    __slots__ = (
        "_accept_parent",
        "_ack_now",
        "_closed_by_user",
        "_delack_at",
        "_fin_seq",
        "_ip_id",
        "_ip_mid",
        "_ip_sum",
        "_ip_tail",
        "_keepalive_at",
        "_keepalive_probes",
        "_l2",
        "_l2_until",
        "_last_rx",
        "_linger_at",
        "_ooo",
        "_ooo_fin",
        "_ooo_last",
        "_passive",
        "_persist_at",
        "_persist_probes",
        "_persist_unanswered",
        "_ph_sum",
        "_ports",
        "_rbuf",
        "_rbuf_start",
        "_rexmits",
        "_rto_at",
        "_rtt_seq",
        "_rtt_time",
        "_rx_segments",
        "_sacked",
        "_sbuf",
        "_sbuf_seq",
        "_sbuf_start",
        "_segs_unacked",
        "_timewait_at",
        "_ts_offset",
        "_tx_segments",
        "cc",
        "config",
        "dupacks",
        "error",
        "high_sacked",
        "iface",
        "in_recovery",
        "irs",
        "iss",
        "key",
        "local",
        "lport",
        "max_snd_wnd",
        "on_established",
        "peer_eof",
        "rcv_adv",
        "rcv_nxt",
        "rcv_wscale",
        "recover",
        "remote",
        "retries",
        "rexmit_next",
        "rport",
        "rtt",
        "sack_ok",
        "snd_max",
        "snd_mss",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "state",
        "stats",
        "table",
        "timer_armed",
        "ts_ok",
        "ts_recent",
        "ts_recent_at",
        "ws_ok",
    )

    def __init__(
        self,
        table: TcpTable,
        local: int,
        lport: int,
        remote: int,
        rport: int,
        config: TcpConfig,
        iss: int,
        now: float,
    ) -> None:
        self.table = table
        self.iface = table.iface
        self.stats = table.iface.stats
        self.config = config
        self.local = local
        self.lport = lport
        self.remote = remote
        self.rport = rport
        self.key = (remote, rport, local, lport)
        self.state = CLOSED
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0
        our_mss = config.mss or (self.iface.mtu - 40)
        self.snd_mss = min(our_mss, 536)  # RFC 9293 §3.7.1 default until the peer says
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_at = 0.0
        self._ts_offset = table.rng.getrandbits(32)
        self.sack_ok = False
        self.ws_ok = False
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max)
        self.cc: CongestionControl = ALGORITHMS[config.congestion](self.snd_mss)
        self.dupacks = 0
        self.in_recovery = False
        self.recover = iss
        self.rexmit_next = iss
        self._sacked: list[list[int]] = []
        self.high_sacked = iss
        self.retries = 0
        self._sbuf = bytearray()
        self._sbuf_start = 0
        self._sbuf_seq = iss + 1
        self._fin_seq: int | None = None
        self._rbuf = bytearray()
        self._rbuf_start = 0
        self._ooo: list[tuple[int, bytes]] = []
        self._ooo_fin: int | None = None
        self._ooo_last = 0  # start of the held block that took the latest segment (for SACK)
        self.peer_eof = False
        self._segs_unacked = 0
        self._ack_now = False
        self._rto_at: float | None = None
        self._delack_at: float | None = None
        self._persist_at: float | None = None
        self._persist_probes = 0
        self._persist_unanswered = 0
        self._keepalive_at: float | None = None
        self._keepalive_probes = 0
        self._timewait_at: float | None = None
        self._linger_at: float | None = None
        self._rtt_seq: int | None = None
        self._rtt_time = 0.0
        self._last_rx = now
        self._closed_by_user = False
        self._passive = False
        self._accept_parent: object | None = None
        self.error: int | None = None
        self.on_event: Callable[[], None] | None = None
        self.on_established: Callable[[TcpConnection], None] | None = None
        self._event_queued = False
        self.timer_armed: float | None = None
        self._l2: bytes | None = None
        self._l2_until = 0.0
        self._ip_mid = b""
        self._ip_tail = b""
        self._ip_sum = 0
        self._ph_sum = 0
        self._ports = 0
        self._ip_id = table.rng.getrandbits(16)
        self._tx_segments = 0
        self._rx_segments = 0
        self._rexmits = 0

    # ================================================================== user API

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    @property
    def local_address(self) -> tuple[str, int]:
        from ..wire.ipv4 import ntoa

        return (ntoa(self.local), self.lport)

    @property
    def remote_address(self) -> tuple[str, int]:
        from ..wire.ipv4 import ntoa

        return (ntoa(self.remote), self.rport)

    @property
    def established(self) -> bool:
        return self.state >= ESTABLISHED

    @property
    def connecting(self) -> bool:
        return self.state in (SYN_SENT, SYN_RECEIVED)

    @property
    def unread(self) -> int:
        """Bytes received in order and not yet read."""
        return len(self._rbuf) - self._rbuf_start

    @property
    def unsent(self) -> int:
        """Bytes in the send buffer not yet sent."""
        return max(0, self._data_end() - max(self.snd_max, self._sbuf_seq))

    @property
    def buffered(self) -> int:
        """Bytes in the send buffer: unacknowledged plus unsent."""
        return len(self._sbuf) - self._sbuf_start

    @property
    def send_space(self) -> int:
        free = self.config.sndbuf - (len(self._sbuf) - self._sbuf_start)
        return free if free > 0 else 0

    @property
    def readable(self) -> bool:
        """recv() would not block: data, EOF, or an error to report."""
        return self.unread > 0 or self.peer_eof or self.error is not None or self.state == CLOSED

    @property
    def writable(self) -> bool:
        """send() would accept data now, or report an error."""
        if self.error is not None or self._fin_seq is not None:
            return True
        return self.state in _CAN_SEND and self.send_space > 0

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    def send(self, data: BytesLike) -> int:
        """Queue as much of ``data`` as the send buffer takes; return how much.

        Raises the connection's error (ConnectionResetError, TimeoutError...),
        BrokenPipeError after shutdown/close, or OSError(ENOTCONN) before the
        connection is established (data may be queued in SYN-SENT, as RFC 9293
        §3.10.2 allows).
        """
        if self.error is not None:
            raise oserror(self.error)
        if self._fin_seq is not None or self._closed_by_user:
            raise oserror(errno.EPIPE)
        if self.state not in _CAN_SEND and self.state not in (SYN_SENT, SYN_RECEIVED):
            raise oserror(errno.ENOTCONN if self.state in (CLOSED, LISTEN) else errno.EPIPE)
        size = len(data)
        n = self.config.sndbuf - (len(self._sbuf) - self._sbuf_start)  # send_space
        if n > size:
            n = size
        if n <= 0:
            return 0
        if self._sbuf_start > 65536:
            self._compact_sbuf()
        if n == size:
            self._sbuf += data
        else:
            self._sbuf += memoryview(data)[:n]
        if self.state in _CAN_SEND:
            self.iface.want_output(self)
        return n

    def recv(self, max_bytes: int = 1 << 20) -> bytes | None:
        """Up to ``max_bytes`` of received data; b"" at end of stream; None if none yet.

        Buffered data is always delivered before an error is raised.
        """
        rbuf = self._rbuf
        start = self._rbuf_start
        avail = len(rbuf) - start
        if avail > 0:
            if start == 0 and avail <= max_bytes:
                data = bytes(rbuf)  # everything, in the one copy the caller needs
            else:
                n = avail if avail <= max_bytes else max_bytes
                data = bytes(memoryview(rbuf)[start : start + n])  # the view is gone before the resize
            self._consumed(start + len(data))
            return data
        return b"" if self._at_end() else None

    def recv_into(self, buf: bytearray | memoryview, nbytes: int = 0) -> int | None:
        """Like :meth:`recv`, into ``buf`` (at most ``nbytes`` if given): the count
        (0 at end of stream), or None if nothing has arrived.  One copy, from the
        receive buffer straight into ``buf``."""
        rbuf = self._rbuf
        start = self._rbuf_start
        avail = len(rbuf) - start
        if avail > 0:
            with memoryview(buf) as mv:
                want = mv.nbytes if not nbytes or nbytes > mv.nbytes else nbytes
                n = avail if avail <= want else want
                with memoryview(rbuf) as src:
                    mv[:n] = src[start : start + n]
            self._consumed(start + n)
            return n
        return 0 if self._at_end() else None

    def _consumed(self, start: int) -> None:
        """The application has read the receive buffer up to ``start``: free what it
        read (all of it, or the head once it is large) and open the window if that
        is worth telling the peer."""
        rbuf = self._rbuf
        if start == len(rbuf):
            rbuf.clear()
            start = 0
        elif start > 65536 and start * 2 > len(rbuf):
            del rbuf[:start]
            start = 0
        self._rbuf_start = start
        if self.state in _TAKES_TEXT:
            self._window_update_check()

    def _at_end(self) -> bool:
        """Nothing buffered to read: raise the connection's error if it has one; True at
        the end of the stream, False if more may come."""
        if self.error is not None:
            raise oserror(self.error)
        return self.peer_eof or self.state == CLOSED

    def shutdown_write(self) -> None:
        """Send FIN after the queued data; keep receiving (half-close, RFC 9293 §3.6)."""
        if self._fin_seq is not None or self.state in (CLOSED, LISTEN):
            return
        if self.state == SYN_SENT:
            self._fin_seq = self._data_end()  # sent once established
            return
        self._queue_fin()

    def close(self) -> None:
        """Graceful close (RFC 9293 §3.10.4).  With unread received data the
        connection is reset instead (RFC 2525 §2.17), as Linux does."""
        if self._closed_by_user:
            return
        self._closed_by_user = True
        st = self.state
        if st in (CLOSED, LISTEN, SYN_SENT):
            self._to_closed(None)
            return
        if self.unread or self._ooo:
            self.abort()
            return
        if self._fin_seq is None:
            self._queue_fin()
        if self.state == FIN_WAIT_2:
            self._linger_at = self.iface.now + self.config.fin_wait2_timeout
            self._timers_changed()

    def abort(self) -> None:
        """Abortive close: send RST and drop everything (RFC 9293 §3.10.5)."""
        self._closed_by_user = True
        if self.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._emit(self.snd_nxt, self.rcv_nxt, RST | ACK, b"", self.iface.now, options=b"")
        self._to_closed(None)

    # ================================================================== opening

    def open_active(self, now: float) -> None:
        """Send SYN (RFC 9293 §3.10.1)."""
        self.state = SYN_SENT
        self._send_syn(now)
        self._arm_rto(now)

    def open_passive(self, seq: int, wnd: int, opts: wtcp.TcpOptions, now: float) -> None:
        """A SYN arrived at a listener: go to SYN-RECEIVED and answer SYN-ACK."""
        self._passive = True
        self.irs = seq
        self.rcv_nxt = seq + 1
        self._negotiate(_Options(opts), now)
        self.snd_wnd = wnd  # RFC 7323 §2.2: the window in a SYN is never scaled
        self.max_snd_wnd = wnd
        self.state = SYN_RECEIVED
        self._send_syn(now)
        self._arm_rto(now)

    def open_from_cookie(self, irs: int, opts: wtcp.TcpOptions, ts_offset: int, now: float) -> None:
        """An ACK at a listener carried a valid SYN cookie (RFC 4987 §3.6): rebuild the
        SYN-RECEIVED state the cookie stood for, as :meth:`open_passive` leaves it once
        its SYN-ACK is sent — ``opts`` decoded from the cookie, ``ts_offset`` the TS clock
        the SYN-ACK used — sending nothing and arming no timer.  The listener then passes
        the ACK to :meth:`segment_arrives`, which completes the handshake (§3.10.7.4)."""
        self._passive = True
        self._ts_offset = ts_offset
        self.irs = irs
        self.rcv_nxt = irs + 1
        self._negotiate(_Options(opts), now)
        self.state = SYN_RECEIVED
        self.snd_nxt = self.snd_max = self.iss + 1
        self.rcv_adv = self.rcv_nxt + min(self.config.rcvbuf, 65535)  # the SYN-ACK's window

    def _negotiate(self, o: _Options, now: float) -> None:
        c = self.config
        our_mss = c.mss or (self.iface.mtu - 40)
        peer_mss = o.mss if o.mss else 536  # RFC 9293 §3.7.1
        self.ts_ok = c.timestamps and o.timestamp is not None
        if self.ts_ok and o.timestamp is not None:
            self.ts_recent = o.timestamp[0]
            self.ts_recent_at = now
        self.sack_ok = c.sack and o.sack_permitted
        self.ws_ok = c.window_scaling and o.wscale is not None
        if self.ws_ok and o.wscale is not None:
            self.snd_wscale = min(o.wscale, 14)  # RFC 7323 §2.3: cap at 14
            self.rcv_wscale = self._our_wscale()
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.snd_mss = max(64, min(our_mss, peer_mss) - (12 if self.ts_ok else 0))
        self.cc = ALGORITHMS[c.congestion](self.snd_mss)

    def _our_wscale(self) -> int:
        return window_shift(self.config.rcvbuf)

    def _send_syn(self, now: float) -> None:
        c = self.config
        mss = c.mss or (self.iface.mtu - 40)
        answering = self.state == SYN_RECEIVED  # passive, or a simultaneous open
        ts = (self._ts_now(now), self.ts_recent if answering else 0) if c.timestamps else None
        if answering:
            # RFC 7323/2018: answer only with options the SYN offered.
            ts = ts if self.ts_ok else None
            wscale = self.rcv_wscale if self.ws_ok else None
            sackp = self.sack_ok
            flags = SYN | ACK
        else:
            wscale = self._our_wscale() if c.window_scaling else None
            sackp = c.sack
            flags = SYN
        opts = wtcp.build_options(mss=mss, wscale=wscale, sack_permitted=sackp, timestamp=ts)
        # RFC 7323 §2.2: the window field of a SYN is not scaled.
        wnd = min(self.config.rcvbuf, 65535)
        self.rcv_adv = self.rcv_nxt + wnd
        self._emit(self.iss, self.rcv_nxt if flags & ACK else 0, flags, b"", now, options=opts, window=wnd)
        self.snd_nxt = self.iss + 1
        if self.snd_max < self.snd_nxt:
            self.snd_max = self.snd_nxt

    # ================================================================== input

    def segment_arrives(
        self, seq32: int, ack32: int, flags: int, wnd: int, seg: memoryview, hl: int, now: float
    ) -> None:
        """RFC 9293 §3.10.7: process one segment addressed to this connection.
        ``seg`` is the whole TCP segment (checksum verified), ``hl`` its header length."""
        self._rx_segments += 1
        st = self.state
        if (
            st == ESTABLISHED
            and flags & 0x17 == ACK
            and seq32 == self.rcv_nxt & _MASK
            and not self.in_recovery
            and not self._sacked
            and (wnd << self.snd_wscale) == self.snd_wnd
        ):
            # Header prediction (Jacobson; RFC 1323 appendix A): in ESTABLISHED, the
            # next in-order segment with nothing unusual — no SYN/FIN/RST/URG, only the
            # timestamp option, window unchanged, no recovery under way — is a pure ACK
            # for new data or in-order data (which may acknowledge new data too, as the
            # requests and responses of a conversation do).  Both take this short path;
            # anything else gets the full RFC 9293 §3.10.7.4 treatment below.  The
            # outcome is the same as the full path's; only checks known to pass are skipped.
            if self.ts_ok:
                if hl == 32:
                    kinds, tsval, tsecr = _TS_WORDS.unpack_from(seg, 20)
                    # PAWS (RFC 7323 §5.3): an older TSval is the full path's business
                    predicted = kinds == _TS_KINDS and not 0 < ((self.ts_recent - tsval) & _MASK) < _HALF
                else:
                    predicted = False
            else:
                tsval = tsecr = 0
                predicted = hl == 20
            if predicted:
                una = self.snd_una
                ack = una + ((ack32 - una + _HALF) & _MASK) - _HALF  # seq.unwrap, inlined
                plen = len(seg) - hl
                if plen == 0:
                    if una < ack <= self.snd_max:
                        if self.ts_ok:  # RFC 7323 §4.3: in order, so its TSval becomes TS.Recent
                            self.ts_recent = tsval
                            self.ts_recent_at = now
                        self._last_rx = now
                        self._keepalive_probes = self._persist_unanswered = 0
                        self._process_ack(ack, self.rcv_nxt, self.snd_wnd, 0, ACK, tsecr, now)
                        return
                elif (
                    una <= ack <= self.snd_max
                    and not self._ooo
                    and not self.peer_eof
                    and plen <= self.rcv_adv - self.rcv_nxt
                ):
                    if self.ts_ok:
                        self.ts_recent = tsval
                        self.ts_recent_at = now
                    self._last_rx = now
                    self._keepalive_probes = self._persist_unanswered = 0
                    if ack > una:
                        self._process_ack(ack, self.rcv_nxt, self.snd_wnd, plen, ACK, tsecr, now)
                    self._rbuf += seg[hl:]
                    self.rcv_nxt += plen
                    mss = self.snd_mss
                    if plen >= mss:
                        # a GRO super-segment counts as the segments it was made of
                        self._segs_unacked += plen // mss
                    if self._segs_unacked >= 2 or not self.config.delayed_ack:
                        # RFC 9293 §3.8.6.3 / RFC 5681 §4.2: ACK at least every second
                        # full segment.  The ACK goes out when the interface is next
                        # polled — after the rest of the batch of frames this one came
                        # in — so a burst of segments read in one wakeup gets one ACK
                        # (ACK coalescing, what GRO does for Linux), and an answer the
                        # application writes meanwhile carries it.
                        self.iface.want_output(self)
                    elif self._delack_at is None:
                        self._delack_at = when = now + self.config.delayed_ack
                        self._arm(when)
                    self._notify()
                    return
        if st == SYN_SENT:
            self._syn_sent_arrives(seq32, ack32, flags, wnd, seg[20:hl], seg[hl:], now)
            return
        if st == CLOSED:
            return
        opts = seg[20:hl]
        payload = seg[hl:]
        seq = unwrap(seq32, self.rcv_nxt)
        if st == SYN_RECEIVED and flags & SYN and flags & ACK and not self._passive and seq + 1 == self.rcv_nxt:
            # RFC 9293 §3.5 figure 7, line 6: in a simultaneous open the peer's SYN,ACK repeats
            # the SYN we hold already; take it as the ACK it also is (as Linux does).
            seq += 1
            flags &= ~SYN
        plen = len(payload)
        # --- timestamps and PAWS (RFC 7323 §5.3) ---
        tsval = -1
        tsecr = 0
        sack_news = False
        if self.ts_ok and opts:
            if len(opts) == 12 and opts[:4] == _TS_HEAD:
                _a, _b, _c, _d, tsval, tsecr = _TS_OPT.unpack_from(opts, 0)
            else:
                try:
                    o = wtcp.parse_options(opts)
                except Exception:
                    self.stats.drop("tcp_bad_option")
                    return
                if o.timestamp is not None:
                    tsval, tsecr = o.timestamp
                if o.sack and self.sack_ok and flags & ACK:
                    sack_news = self._on_sack(o.sack)
            # tsval < TS.Recent: an old duplicate, unless TS.Recent is stale (24 days, §5.5)
            if (
                tsval >= 0
                and not flags & RST
                and 0 < ((self.ts_recent - tsval) & 0xFFFFFFFF) < 0x80000000
                and now - self.ts_recent_at <= 24 * 86400
            ):
                self.stats.drop("tcp_paws_rejected")
                self._send_ack(now)
                return
        elif opts and self.sack_ok and flags & ACK:
            try:
                o = wtcp.parse_options(opts)
            except Exception:
                self.stats.drop("tcp_bad_option")
                return
            if o.sack:
                sack_news = self._on_sack(o.sack)
        # --- first: sequence number acceptable? (§3.10.7.4 table) ---
        rcv_wnd = self.rcv_adv - self.rcv_nxt
        seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        rn = self.rcv_nxt
        if seglen == 0:
            ok = seq == rn if rcv_wnd <= 0 else rn <= seq < rn + rcv_wnd
        elif rcv_wnd <= 0:
            ok = False
        else:
            ok = (rn <= seq < rn + rcv_wnd) or (rn <= seq + seglen - 1 < rn + rcv_wnd)
        if not ok and seq == (rn + rcv_wnd if rcv_wnd > 0 else rn) and flags & ACK and not flags & (SYN | RST):
            # The segment starts at our right edge.  A zero window takes no data, "but special
            # allowance should be made to accept valid ACKs" (same section); the same holds
            # for a peer that filled the window we offered, whose pure ACKs then carry
            # SEG.SEQ = our RCV.NXT + RCV.WND (Linux's tcp_sequence() accepts the edge too):
            # rejecting them would ignore its acknowledgments for as long as we lag behind
            # (a deadlock once both sides retransmit).  Go on as if it were empty, and answer
            # with our window if it carried data or FIN (a zero-window probe among them).
            # An empty one at a zero window never gets here: the table took it above.
            if plen or flags & FIN:
                self.stats.drop("tcp_zero_window_data" if rcv_wnd <= 0 else "tcp_data_beyond_window")
                self._ack_now = True
            payload = payload[:0]
            plen = 0
            flags &= ~FIN
            ok = True
        if not ok:
            if st == TIME_WAIT and flags & FIN and not flags & RST:
                self._timewait_at = now + 2 * self.config.msl  # retransmitted FIN: restart 2MSL
                self._timers_changed()
            if not flags & RST:
                self.stats.drop("tcp_unacceptable_segment")
                self._send_ack(now)
            else:
                self.stats.drop("tcp_rst_out_of_window")
            return
        self._last_rx = now
        self._keepalive_probes = 0
        self._persist_unanswered = 0
        # --- second: RST (RFC 5961 §3.2) ---
        if flags & RST:
            if seq != rn:
                self._challenge_ack(now)
                return
            if st == TIME_WAIT:
                self.stats.drop("tcp_rst_in_time_wait")  # RFC 1337: TIME-WAIT assassination
                return
            if st == SYN_RECEIVED:
                if self._passive:
                    self._to_closed(None)  # back to LISTEN: the listener forgets it
                else:
                    # RFC 9293 §3.10.7.4: "initiated with an active OPEN (i.e., came from
                    # SYN-SENT state), then the connection was refused"
                    self._to_closed(errno.ECONNREFUSED)
                return
            if st in (CLOSING, LAST_ACK):
                self._to_closed(None)
                return
            self._to_closed(errno.ECONNRESET)
            return
        # --- fourth: SYN in a synchronized state (RFC 5961 §4.2) ---
        if flags & SYN:
            if st == SYN_RECEIVED and self._passive and seq == self.irs:
                self._send_syn(now)  # retransmitted SYN: answer again
                return
            self._challenge_ack(now)
            return
        # --- fifth: ACK ---
        if not flags & ACK:
            self.stats.drop("tcp_no_ack")
            return
        ack = unwrap(ack32, self.snd_una)
        # RFC 5961 §5.2: ACK acceptable only in [SND.UNA - MAX.SND.WND, SND.NXT]
        if ack > self.snd_max or ack < self.snd_una - max(self.max_snd_wnd, 1):
            if ack > self.snd_max:
                self.stats.drop("tcp_ack_unsent")
                self._send_ack(now)
            else:
                self.stats.drop("tcp_ack_too_old")
                self._challenge_ack(now)
            return
        if tsval >= 0 and seq <= self.rcv_nxt:
            # RFC 7323 §4.3: remember the TSval of the segment that fills RCV.NXT
            self.ts_recent = tsval
            self.ts_recent_at = now
        if st == SYN_RECEIVED:
            if not self.snd_una < ack:
                self.table.send_rst_for(self, ack, now)
                return
            self.state = ESTABLISHED
            self.snd_wnd = wnd << self.snd_wscale
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if self.retries:
                # the SYN or SYN,ACK was lost: RTO 3 s (RFC 6298 §5.7), initial window one
                # segment (RFC 5681 §3.1: "MUST be one segment")
                self.rtt.handshake_timed_out()
                self.cc.cwnd = self.snd_mss
            if self.on_established is not None:
                self.on_established(self)
            st = ESTABLISHED
            self._notify()
        self._process_ack(ack, seq, wnd << self.snd_wscale, plen, flags, tsecr if tsval >= 0 else 0, now,
                          sack_news)
        if self.state == CLOSED:
            return
        st = self.state
        # our FIN acknowledged?
        fin_acked = self._fin_seq is not None and self.snd_una > self._fin_seq
        if fin_acked:
            if st == FIN_WAIT_1:
                self.state = st = FIN_WAIT_2
                if self._closed_by_user:
                    self._linger_at = now + self.config.fin_wait2_timeout
                    self._timers_changed()
            elif st == CLOSING:
                self._enter_time_wait(now)
                return
            elif st == LAST_ACK:
                self._to_closed(None)
                return
        if st == TIME_WAIT:
            if flags & FIN:
                self._send_ack(now)
                self._timewait_at = now + 2 * self.config.msl
                self._timers_changed()
            return
        # --- seventh: segment text ---
        if plen:
            if st in _TAKES_TEXT and not self.peer_eof:
                if self._closed_by_user and self.state in (FIN_WAIT_1, FIN_WAIT_2):
                    # Nobody will read it: tell the peer (as Linux does for orphans).
                    self.stats.drop("tcp_data_after_close")
                    self._emit(self.snd_nxt, self.rcv_nxt, RST | ACK, b"", now, options=b"")
                    self._to_closed(None)
                    return
                self._receive_text(seq, payload, now)
            else:
                self.stats.drop("tcp_data_after_fin")
        # --- eighth: FIN ---
        if flags & FIN:
            fin_seq = seq + plen
            if fin_seq == self.rcv_nxt and not self.peer_eof:
                self._receive_fin(now)
            elif fin_seq > self.rcv_nxt:
                self._ooo_fin = fin_seq
                self._ack_now = True
        if self._ack_now:
            self._ack_now = False
            if not self._output(now):
                self._send_ack(now)
        elif self._delack_at is not None or self.buffered > self._sent_bytes():
            self.iface.want_output(self)

    def _syn_sent_arrives(
        self, seq32: int, ack32: int, flags: int, wnd: int, opts: memoryview, payload: memoryview, now: float
    ) -> None:
        """RFC 9293 §3.10.7.3."""
        if flags & ACK:
            ack = unwrap(ack32, self.snd_una)
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    self.stats.drop("tcp_syn_sent_bad_ack")
                    self.table.send_rst(self.local, self.lport, self.remote, self.rport, ack32, 0, RST, now)
                else:
                    self.stats.drop("tcp_rst_out_of_window")
                return
            if flags & RST:
                self._to_closed(errno.ECONNREFUSED)
                return
        elif flags & RST:
            self.stats.drop("tcp_rst_without_ack")  # RFC 9293 §3.10.7.3: no ACK, drop the RST
            return
        if not flags & SYN:
            self.stats.drop("tcp_syn_sent_no_syn")
            return
        try:
            o = wtcp.parse_options(opts)
        except Exception:
            self.stats.drop("tcp_bad_option")
            return
        self.irs = seq32
        self.rcv_nxt = seq32 + 1
        self._negotiate(_Options(o), now)
        if flags & ACK:
            ack = unwrap(ack32, self.snd_una)
            self.snd_una = ack
            self._sbuf_seq = self.iss + 1
            self.state = ESTABLISHED
            self.snd_wnd = wnd << self.snd_wscale
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1 = self.rcv_nxt - 1
            self.snd_wl2 = ack
            if self.retries == 0 and o.timestamp is None:
                self.rtt.sample(now - self._rtt_time)
            elif o.timestamp is not None and o.timestamp[1]:
                self.rtt.sample(self._ts_rtt(o.timestamp[1], now))
            if self.retries:
                # the SYN or SYN,ACK was lost: RTO 3 s (RFC 6298 §5.7), initial window one
                # segment (RFC 5681 §3.1: "MUST be one segment")
                self.rtt.handshake_timed_out()
                self.cc.cwnd = self.snd_mss
            self.retries = 0
            self._rto_at = None
            self._timers_changed()
            # the SYN-ACK's window is not scaled (RFC 7323 §2.2)
            self.snd_wnd = wnd
            self.max_snd_wnd = wnd
            self.rcv_adv = self.rcv_nxt + self._window_to_advertise()
            if self._fin_seq is not None:
                self._fin_seq = None
                self._queue_fin()
            self._send_ack(now)
            if self.buffered:
                self.iface.want_output(self)
            self._notify()
            if payload:
                self._receive_text(self.rcv_nxt, payload, now)
            if flags & FIN and self.rcv_nxt == unwrap(seq32, self.rcv_nxt) + 1 + len(payload):
                self._receive_fin(now)
        else:
            # Simultaneous open (RFC 9293 §3.5, figure 7)
            self.state = SYN_RECEIVED
            self.snd_wnd = wnd
            self.max_snd_wnd = wnd
            self._passive = False
            self._send_syn(now)  # SYN,ACK; a retransmission (on RTO) is one too

    # ---------------------------------------------------------------- ACK processing

    def _process_ack(self, ack: int, seq: int, wnd: int, plen: int, flags: int, tsecr: int, now: float,
                     sack_news: bool = False) -> None:
        una = self.snd_una
        sbuf = self._sbuf
        if ack > una:
            acked = ack - una
            self.snd_una = ack
            snd_max = self.snd_max
            flight_before = snd_max - una
            # RTT sample: timestamps on every advancing ACK (RFC 7323 §4.1), else
            # the one timed segment unless it was retransmitted (Karn).
            rtt_est = self.rtt
            if tsecr:
                rtt = (((int(now * 1000) + self._ts_offset) - tsecr) & _MASK) / 1000.0
                if rtt < 120:
                    rtt_est.sample(rtt)
            elif self._rtt_seq is not None and ack > self._rtt_seq:
                self._rtt_seq = None
                rtt = now - self._rtt_time
                if 0 <= rtt < 120:
                    rtt_est.sample(rtt)
            self.retries = 0
            self._persist_probes = 0
            # drop acknowledged bytes from the send buffer
            start = self._sbuf_start
            sbuf_seq = self._sbuf_seq
            data_end = sbuf_seq + len(sbuf) - start
            data_acked = (ack if ack < data_end else data_end) - sbuf_seq
            if data_acked > 0:
                start += data_acked
                self._sbuf_seq = sbuf_seq + data_acked
                if start == len(sbuf):
                    sbuf.clear()
                    start = 0
                self._sbuf_start = start
            if self.snd_nxt < ack:
                self.snd_nxt = ack  # after a go-back-N rewind
            if self._sacked:
                self._prune_sacked()
            # congestion control and recovery (RFC 5681, RFC 6582, RFC 6675)
            if self.in_recovery:
                if ack >= self.recover:
                    self.in_recovery = False
                    # RFC 6582 §3.2 step 3, full ACK: min(ssthresh, max(FlightSize, SMSS) + SMSS)
                    self.cc.cwnd = min(self.cc.ssthresh, max(snd_max - ack, self.snd_mss) + self.snd_mss)
                    self.dupacks = 0
                else:
                    # partial ACK: the next hole is lost too (RFC 6582 §3.2 step 3)
                    self.dupacks = 0
                    if self.rexmit_next < ack:
                        self.rexmit_next = ack
                    if not self.sack_ok:
                        self.rexmit_next = ack
                        self._retransmit_one(ack, now)
            else:
                self.dupacks = 0
                if una == self.iss:
                    acked -= 1  # the SYN takes a sequence number but is not data (RFC 5681 §3.1)
                if acked > 0:
                    self.cc.on_ack(acked, flight_before, now, rtt_est.srtt)
            # RFC 6298 §5.2/5.3.  A timer that moves later needs no heap update (see
            # iface.timers): the armed entry fires early and re-arms.
            if self.snd_una >= self.snd_max:
                self._rto_at = None
                if self._keepalive_at is None and self.config.keepalive:
                    self._timers_changed()  # arms keepalive (an ACK may complete the handshake)
            else:
                self._rto_at = rto_at = now + rtt_est.rto
                self._arm(rto_at)
            # Buffer space freed: wake the writer once a quarter of the buffer is free (or
            # all of it), not on every ACK — fewer and larger writes, as Linux's
            # sk_stream_write_space waits for a third.
            if start < len(sbuf):
                if self.state not in _CAN_SEND or self.config.sndbuf - len(sbuf) + start >= self.config.sndbuf >> 2:
                    self._notify()
            elif self.state in _CAN_SEND:
                self._notify()
        elif ack == una and self.snd_max > una and (
            # RFC 6675 §2: an ACK that SACKs new data is a duplicate, even if it carries data
            # or changes the window (Linux's window grows while it SACKs, and its ACKs ride
            # on its data); else RFC 5681 §2's definition
            sack_news or (plen == 0 and not flags & (SYN | FIN) and wnd == self.snd_wnd)
        ):
            # duplicate ACK
            self.dupacks += 1
            if self.dupacks == 3 and not self.in_recovery and una >= self.recover:
                self._enter_recovery(now)
            else:
                self.iface.want_output(self)  # recovery or limited transmit may send
        # window update (RFC 9293 §3.10.7.4, fifth step)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            opened = wnd > self.snd_wnd
            self.snd_wnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if opened:
                self._persist_at = None
                self._persist_probes = 0
                self._timers_changed()
                self.iface.want_output(self)
        # unsent data left (the end of the buffer lies beyond SND.MAX): the ACK may let it go
        if ack > una and self._sbuf_seq + len(sbuf) - self._sbuf_start > self.snd_max:
            self.iface.want_output(self)

    def _enter_recovery(self, now: float) -> None:
        """Fast retransmit and recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5)."""
        flight = self.snd_max - self.snd_una
        self.cc.on_loss(flight, now)
        self.cc.cwnd = max(self.cc.ssthresh, 2 * self.snd_mss)
        self.in_recovery = True
        self.recover = self.snd_max
        self.rexmit_next = self.snd_una
        self._rtt_seq = None
        self.stats.drop("tcp_fast_retransmit")  # counted as an event, not a loss of ours
        self._retransmit_one(self.snd_una, now)
        self.rexmit_next = min(self.snd_una + self._data_mss(), self.snd_max)
        self.iface.want_output(self)

    def _on_sack(self, blocks: tuple[tuple[int, int], ...]) -> bool:
        """Record SACK blocks; True if they cover bytes not SACKed before."""
        una = self.snd_una
        before = self._sacked_bytes()
        for left32, right32 in blocks:
            left = unwrap(left32, una)
            right = unwrap(right32, una)
            if not (una < right <= self.snd_max and left < right):
                continue  # RFC 2018 §5: ignore blocks that make no sense (and D-SACK)
            left = max(left, una)
            self._add_sacked(left, right)
        return self._sacked_bytes() > before

    def _add_sacked(self, left: int, right: int) -> None:
        s = self._sacked
        merged = [left, right]
        out: list[list[int]] = []
        for blk in s:
            if blk[1] < merged[0] or blk[0] > merged[1]:
                out.append(blk)
            else:
                merged[0] = min(merged[0], blk[0])
                merged[1] = max(merged[1], blk[1])
        out.append(merged)
        out.sort()
        if len(out) > 32:
            out = out[-32:]
        self._sacked = out
        if merged[1] > self.high_sacked:
            self.high_sacked = merged[1]

    def _prune_sacked(self) -> None:
        una = self.snd_una
        self._sacked = [b if b[0] >= una else [una, b[1]] for b in self._sacked if b[1] > una]
        if self.high_sacked < una:
            self.high_sacked = una

    def _sacked_bytes(self) -> int:
        return sum(b[1] - b[0] for b in self._sacked)

    def _pipe(self) -> int:
        """Bytes believed in flight (RFC 6675 §4, simplified to ranges)."""
        flight = self.snd_max - self.snd_una
        if not self.in_recovery:
            return flight
        if self.sack_ok and self._sacked:
            hs = self.high_sacked
            sacked = self._sacked_bytes()
            # everything unsacked below the highest SACK is taken as lost,
            # except what we have retransmitted since
            lost = (hs - self.snd_una) - sacked
            rexmitted = max(0, min(self.rexmit_next, hs) - self.snd_una) - sum(
                min(b[1], self.rexmit_next) - b[0] for b in self._sacked if b[0] < self.rexmit_next
            )
            return max(0, flight - sacked - lost + max(0, rexmitted))
        return max(0, flight - self.dupacks * self.snd_mss)

    # ---------------------------------------------------------------- receiving text

    def _receive_text(self, seq: int, payload: memoryview, now: float) -> None:
        rn = self.rcv_nxt
        end = seq + len(payload)
        limit = self.rcv_adv if self.rcv_adv > rn else rn
        if seq < rn:
            payload = payload[rn - seq :]  # already have the head
            seq = rn
        if end > limit:
            payload = payload[: max(0, limit - seq)]  # beyond the window (§3.10.7.4)
            end = seq + len(payload)
            self._ack_now = True
        if not payload:
            self._ack_now = True  # a duplicate: tell the sender where we are
            return
        if seq == rn:
            self._rbuf += payload
            self.rcv_nxt = end
            full = len(payload) >= self.snd_mss
            if self._ooo:
                self._merge_ooo()
                self._ack_now = True  # RFC 5681 §4.2: ACK at once when a gap fills
            # a GRO super-segment counts as the segments it was made of
            self._segs_unacked += len(payload) // self.snd_mss if full else 0
            if self._ooo_fin is not None and self._ooo_fin == self.rcv_nxt:
                self._ooo_fin = None
                self._receive_fin(now)
            if self._segs_unacked >= 2 or not self.config.delayed_ack or self.state != ESTABLISHED:
                self._ack_now = True
            elif not self._ack_now and self._delack_at is None:
                # RFC 9293 §3.8.6.3: ACK at least every second full segment, or within the timer
                self._delack_at = now + self.config.delayed_ack
                self._timers_changed()
            if not full and self._delack_at is None:
                self._delack_at = now + self.config.delayed_ack
                self._timers_changed()
            self._notify()
        else:
            self._store_ooo(seq, bytes(payload))
            self._ack_now = True  # RFC 5681 §4.2: out-of-order data gets an immediate (dup) ACK

    def _store_ooo(self, seq: int, data: bytes) -> None:
        ooo = self._ooo
        # merge with overlapping/adjacent stored segments, keep the list sorted
        new_start, new_data = seq, data
        keep: list[tuple[int, bytes]] = []
        for s, d in ooo:
            e = s + len(d)
            if e < new_start or s > new_start + len(new_data):
                keep.append((s, d))
                continue
            lo = min(s, new_start)
            hi = max(e, new_start + len(new_data))
            buf = bytearray(hi - lo)
            buf[s - lo : e - lo] = d
            buf[new_start - lo : new_start - lo + len(new_data)] = new_data
            new_start, new_data = lo, bytes(buf)
        if len(keep) >= self.config.max_ooo_segments:
            self.stats.drop("tcp_ooo_full")
            return
        keep.append((new_start, new_data))
        keep.sort(key=_first)
        self._ooo = keep
        self._ooo_last = new_start

    def _merge_ooo(self) -> None:
        ooo = self._ooo
        while ooo and ooo[0][0] <= self.rcv_nxt:
            s, d = ooo.pop(0)
            e = s + len(d)
            if e > self.rcv_nxt:
                self._rbuf += d[self.rcv_nxt - s :]
                self.rcv_nxt = e

    def _receive_fin(self, now: float) -> None:
        self.rcv_nxt += 1
        self.peer_eof = True
        self._ack_now = True
        st = self.state
        if st in (SYN_RECEIVED, ESTABLISHED):
            self.state = CLOSE_WAIT
        elif st == FIN_WAIT_1:
            if self._fin_seq is not None and self.snd_una > self._fin_seq:
                self._enter_time_wait(now)
            else:
                self.state = CLOSING
        elif st == FIN_WAIT_2:
            self._enter_time_wait(now)
        self._notify()

    def _window_to_advertise(self) -> int:
        free = self.config.rcvbuf - (len(self._rbuf) - self._rbuf_start)
        if self._ooo:
            free -= sum(len(d) for _, d in self._ooo)
        return free if free > 0 else 0

    def _window_update_check(self) -> None:
        """After the application read: open the window if it grew enough (SWS, RFC 9293 §3.8.6.2.2)."""
        if self.state not in _TAKES_TEXT:
            return
        rcvbuf = self.config.rcvbuf
        # what the window field can show: without window scaling a big buffer still
        # advertises at most 65535, and an update that cannot open it further is noise
        free = min(self._window_to_advertise(), 65535 << self.rcv_wscale)
        if free - (self.rcv_adv - self.rcv_nxt) >= min(rcvbuf >> 1, self.snd_mss * 2):
            self._ack_now_deferred()

    def _ack_now_deferred(self) -> None:
        self._segs_unacked = 2  # forces an ACK at the next flush
        self.iface.want_output(self)

    # ================================================================== output

    def _data_end(self) -> int:
        return self._sbuf_seq + (len(self._sbuf) - self._sbuf_start)

    def _sent_bytes(self) -> int:
        """Bytes of the send buffer already sent at least once."""
        return max(0, min(self.snd_max, self._data_end()) - self._sbuf_seq)

    def _compact_sbuf(self) -> None:
        start = self._sbuf_start
        if start > 65536 and start * 2 > len(self._sbuf):
            del self._sbuf[:start]
            self._sbuf_start = 0

    def _queue_fin(self) -> None:
        self._fin_seq = self._data_end()
        if self.state in (SYN_RECEIVED, ESTABLISHED):
            self.state = FIN_WAIT_1
        elif self.state == CLOSE_WAIT:
            self.state = LAST_ACK
        self.iface.want_output(self)

    def _ack_pending(self) -> bool:
        return self._segs_unacked >= 2 or self._ack_now

    def flush(self, now: float) -> None:
        """OutputOwner: send what may be sent (called from the interface's poll)."""
        st = self.state
        if st in _NO_OUTPUT or (st == SYN_RECEIVED and not self._passive):
            return
        sent = self._output(now)
        if not sent and (self._segs_unacked >= 2 or self._ack_now):
            self._send_ack(now)

    def _output(self, now: float) -> bool:
        """Send new data, retransmissions in recovery, and FIN, as the windows allow.
        Returns whether any segment went out (it carried the ACK)."""
        if self.state not in _SENDS_DATA:
            return False
        mss = self._data_mss() if self._ooo else self.snd_mss
        data_end = self._sbuf_seq + len(self._sbuf) - self._sbuf_start
        fin_seq = self._fin_seq
        sent_any = False
        nodelay = self.config.nodelay
        cc = self.cc
        window = self._advertise()  # nothing is received while we send: one window for all
        for _ in range(4096):  # bounded; each turn sends one segment or one burst
            una = self.snd_una
            nxt = self.snd_nxt
            if self.in_recovery:
                # RFC 6675 §5 NextSeg: first a lost (unsacked) range, then new data
                pipe = self._pipe()
                if pipe >= cc.cwnd:
                    break
                hole = self._next_hole()
                if hole is not None:
                    start, end = hole
                    n = min(mss, end - start)
                    self._send_data(start, n, now, retransmit=True, window=window)
                    self.rexmit_next = start + n
                    sent_any = True
                    continue
                wnd_room = una + self.snd_wnd - nxt
                n = min(mss, data_end - nxt, wnd_room)
                if n <= 0:
                    break
                self._send_data(nxt, n, now, window=window)
                sent_any = True
                continue
            # RFC 3042 limited transmit: each of the first two duplicate ACKs lets one
            # new segment out, so a small window still produces the third.
            wnd = min(self.snd_wnd, cc.cwnd + (self.dupacks * mss if self.dupacks < 3 else 0))
            room = una + wnd - nxt
            avail = data_end - nxt
            if avail > 0:
                n = min(avail, mss, room)
                if n == mss and room > mss and avail > mss:
                    if self.iface.tso:
                        # TSO: as many whole segments as fit, plus the tail if it ends the data
                        n = min(avail, room, _TSO_MAX // mss * mss)
                        if n < avail:
                            n -= n % mss
                    else:
                        # a burst of whole segments in one call (the tail, if any, gets the
                        # Nagle and SWS checks on the next turn)
                        n = min(avail, room) // mss * mss
                        self._send_data(nxt, n, now, window=window, size=mss)
                        sent_any = True
                        continue
                if n <= 0:
                    if self.snd_wnd == 0 or una + self.snd_wnd <= nxt:
                        self._arm_persist(now)
                    break
                if n < mss:
                    # Sender SWS avoidance (RFC 9293 §3.8.6.2.1) and Nagle (§3.7.4)
                    if n < avail and n < self.max_snd_wnd >> 1:
                        if nxt == una:
                            self._arm_persist(now)
                        break
                    elif not (nodelay or nxt == una or fin_seq is not None):
                        break
                self._send_data(nxt, n, now, window=window)
                sent_any = True
                continue
            if fin_seq is not None and nxt == fin_seq:
                self._emit(fin_seq, self.rcv_nxt, FIN | ACK, b"", now, window=window)
                self.snd_nxt = fin_seq + 1
                if self.snd_max < self.snd_nxt:
                    self.snd_max = self.snd_nxt
                self._after_send(now)
                sent_any = True
            break
        return sent_any

    def _data_mss(self) -> int:
        """The most data one segment may carry now.  RFC 9293 §3.7.1 (RFC 6691): the
        sender MUST reduce the data length by the TCP options it includes.  snd_mss
        already allows for timestamps; the SACK blocks that ride on every segment
        while we hold out-of-order data (see _emit) come on top, else a full-sized
        segment exceeds the MTU and the interface refuses it."""
        if self._ooo and self.sack_ok:
            return self.snd_mss - 4 - 8 * min(len(self._ooo), 3 if self.ts_ok else 4)
        return self.snd_mss

    def _next_hole(self) -> tuple[int, int] | None:
        """The next range to retransmit in recovery, at or after ``rexmit_next``."""
        start = max(self.rexmit_next, self.snd_una)
        if self.sack_ok and self._sacked:
            limit = self.high_sacked
            for left, right in self._sacked:
                if start < left:
                    return (start, min(left, limit)) if start < limit else None
                if start < right:
                    start = right
            return None
        return None

    def _retransmit_one(self, seq: int, now: float) -> None:
        # RFC 9293 §3.8.6: the send window bounds retransmissions too.  A window the
        # peer shrank below a segment gets what fits, and a shut one a 1-byte probe
        # (RFC 1122 §4.2.2.17): else SND.NXT lands beyond the window and the peer drops
        # what we send (found against Linux by tests/interop/test_api_kernel.py).
        room = self.snd_una + self.snd_wnd - seq
        n = min(self._data_mss(), self._data_end() - seq, room if room > 0 else 1)
        if n > 0:
            self._send_data(seq, n, now, retransmit=True)
        elif self._fin_seq is not None and seq == self._fin_seq:
            self._emit(seq, self.rcv_nxt, FIN | ACK, b"", now)

    def _send_data(self, seq: int, n: int, now: float, retransmit: bool = False, window: int | None = None,
                   size: int = 0) -> None:
        """Send bytes [seq, seq + n) of the send buffer: one segment, or with ``size``
        a burst of segments of that size."""
        if window is None:
            window = self._advertise()
        base = self._sbuf_start - self._sbuf_seq
        end_seq = seq + n
        data_end = self._data_end()
        fin_seq = self._fin_seq
        rcv_nxt = self.rcv_nxt
        step = size or n
        fast = self._fast_path_open(now)
        with memoryview(self._sbuf) as mv:
            s = seq
            while s < end_seq:
                e = s + step
                if e > end_seq:
                    e = end_seq
                flags = ACK
                if e == data_end:
                    flags = ACK | PSH
                    if fin_seq is not None and e == fin_seq and not retransmit:
                        flags = ACK | PSH | FIN
                if fast:  # what _emit does for this segment, without its checks
                    self._tx_segments += 1
                    self._emit_fast(s & _MASK, rcv_nxt & _MASK, flags, mv[base + s : base + e], now, window)
                else:
                    self._emit(s, rcv_nxt, flags, mv[base + s : base + e], now, window=window)
                s = e
        if fast:
            self._segs_unacked = 0
            self._delack_at = None
        if retransmit:
            self._rexmits += 1
        if not retransmit or end_seq > self.snd_nxt:
            self.snd_nxt = end_seq + (1 if flags & FIN else 0)
        if self.snd_nxt > self.snd_max:
            if self._rtt_seq is None and not retransmit:
                self._rtt_seq = seq
                self._rtt_time = now
            self.snd_max = self.snd_nxt
        self._after_send(now)

    def _after_send(self, now: float) -> None:
        if self._rto_at is None:
            self._rto_at = when = now + self.rtt.rto
            self._arm(when)

    def _send_ack(self, now: float) -> None:
        # After an RTO rewound SND.NXT (go back N), the peer may already hold data up to
        # SND.MAX; an ACK starting below its RCV.NXT is an old duplicate to it and its
        # acknowledgment and window are ignored (Linux drops it by its tcp_sequence()).
        # So a pure ACK starts at SND.MAX, as in BSD's tcp_output().
        seq = self.snd_max
        # A peer drops a segment that starts beyond its window, pure ACKs included
        # (RFC 9293 §3.10.7.4, first check), so if that went past the right edge (the
        # peer shrank its window after we sent, or a zero-window probe) the ACK starts at
        # the edge instead, as Linux's tcp_acceptable_seq() does.
        end = self.snd_una + self.snd_wnd
        if seq > end and self.state >= ESTABLISHED:
            seq = end
        self._emit(seq, self.rcv_nxt, ACK, b"", now)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§5.2, rate-limited per stack (§7)."""
        if self.table.challenge_ack_allowed(now):
            self.stats.drop("tcp_challenge_ack_sent")
            self._send_ack(now)
        else:
            self.stats.drop("tcp_challenge_ack_limited")

    def _emit(
        self, seq: int, ack: int, flags: int, payload: BytesLike, now: float, *,
        options: bytes | None = None, window: int | None = None,
    ) -> None:
        """Build and send one segment; every segment we send passes here."""
        if window is None:
            window = self._advertise()
        if flags & ACK:
            self._segs_unacked = 0
            self._delack_at = None
        self._tx_segments += 1
        if options is None and self._fast_path_open(now):
            self._emit_fast(seq & _MASK, ack & _MASK, flags, payload, now, window)
            return
        if options is None:
            options = b""
            if self.ts_ok:
                options = _TS_OPT.pack(1, 1, 8, 10, self._ts_now(now), self.ts_recent)
            if self._ooo and self.sack_ok:
                options += self._sack_option(3 if self.ts_ok else 4)
        hl = 20 + len(options)
        hdr = _HDR.pack(self.lport, self.rport, wrap(seq), wrap(ack), hl << 2, flags, window, 0, 0)
        seg = bytearray(hdr)
        if options:
            seg += options
        if payload:
            seg += payload
        meta: bytes | None = None
        if self.iface.tx_csum_offload:
            # Checksum offload (virtio-net NEEDS_CSUM): the field carries the folded
            # pseudo-header sum and the kernel sums the rest — no payload pass in Python.
            c = fold(pseudo_header_sum(self.local, self.remote, PROTO_TCP, len(seg)))
            mss = self._data_mss()  # the header, SACK blocks included, repeats on every piece
            if len(seg) - hl > mss:
                # a TSO super-segment: the kernel cuts it into mss-sized segments
                meta = _VNET.pack(F_NEEDS_CSUM, GSO_TCPV4, 34 + hl, mss, 34, 16, 0)
            else:
                meta = _CSUM_META
        else:
            c = checksum(seg, pseudo_header_sum(self.local, self.remote, PROTO_TCP, len(seg)))
        seg[16] = c >> 8
        seg[17] = c & 0xFF
        # A neighbour we know gets the frame built here, with the IPv4 header from
        # per-connection constants — instead of route, ARP lookup and header build
        # per segment in the interface.
        l2 = self._l2
        if l2 is None or now >= self._l2_until:
            l2 = self._resolve_l2(now)
            if l2 is None:
                self.table.output(self, seg, now, meta)
                return
        table = self.table
        if table.tracer is not None:
            table.tracer(f"{table.ends(self)} {self.state_name} --> {describe_bytes(seg)}")
        total = 20 + len(seg)
        ident = self._ip_id = (self._ip_id + 1) & 0xFFFF
        iface = self.iface
        frame = b"".join((
            iface._l2_prefix if meta is None else meta,
            _IP_HEAD.pack(l2, total, ident, self._ip_mid, -(self._ip_sum + total + ident) % 0xFFFF, self._ip_tail),
            seg,
        ))
        if total < 46:
            frame += bytes(46 - total)  # Ethernet minimum frame size
        iface.tx.append(frame)
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += len(frame)
        st.ipv4_tx += 1
        st.tcp_tx += 1

    def _fast_path_open(self, now: float) -> bool:
        """Whether a segment without options beyond timestamps may go out through
        :meth:`_emit_fast`: the neighbour's MAC is fresh, no SACK blocks are owed and no
        tracer wants to see it."""
        return (self._l2 is not None and now < self._l2_until and not (self._ooo and self.sack_ok)
                and self.table.tracer is None)

    def _emit_fast(self, seq: int, ack: int, flags: int, payload: BytesLike, now: float, window: int) -> None:
        """The common segment — to a neighbour whose MAC is known, with no option but
        timestamps — as one ``struct`` pack of Ethernet, IPv4 and TCP headers.  Both
        checksums are sums of the fields, taken modulo 0xFFFF (2**16 ≡ 1, so a 32-bit
        field counts as itself, RFC 1071 §2): only the payload is summed from bytes,
        and under checksum offload not even that."""
        iface = self.iface
        plen = len(payload)
        if self.ts_ok:
            tsval = (int(now * 1000) + self._ts_offset) & _MASK
            tsecr = self.ts_recent
            tcplen = 32 + plen
        else:
            tcplen = 20 + plen
        if iface.tx_csum_offload:
            # NEEDS_CSUM: the field holds the folded pseudo-header sum; the kernel adds the rest
            c = fold(self._ph_sum + tcplen)
            mss = self.snd_mss  # no SACK blocks on this path
            if plen > mss:  # a TSO super-segment: the kernel cuts it into mss-sized segments
                prefix = _VNET.pack(F_NEEDS_CSUM, GSO_TCPV4, 34 + tcplen - plen, mss, 34, 16, 0)
            else:
                prefix = _CSUM_META
        else:
            x = self._ph_sum + self._ports + tcplen + seq + ack + flags + window
            if self.ts_ok:
                x += 0x8000 + _TS_KINDS_SUM + tsval + tsecr  # data offset 8 words
            else:
                x += 0x5000
            if plen:
                x += word_sum(payload)
            c = -x % 0xFFFF
            prefix = iface._l2_prefix
        total = 20 + tcplen
        ident = self._ip_id = (self._ip_id + 1) & 0xFFFF
        ipck = -(self._ip_sum + total + ident) % 0xFFFF
        if self.ts_ok:
            hdr = _FRAME_TS.pack(self._l2, total, ident, self._ip_mid, ipck, self._ip_tail, self.lport, self.rport,
                                 seq, ack, 0x80, flags, window, c, 0, _TS_KINDS, tsval, tsecr)
        else:
            hdr = _FRAME.pack(self._l2, total, ident, self._ip_mid, ipck, self._ip_tail, self.lport, self.rport,
                              seq, ack, 0x50, flags, window, c, 0)
        frame = b"".join((prefix, hdr, payload)) if plen else prefix + hdr
        if total < 46:
            frame += bytes(46 - total)  # Ethernet minimum frame size
        iface.tx.append(frame)
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += len(frame)
        st.ipv4_tx += 1
        st.tcp_tx += 1

    def _resolve_l2(self, now: float) -> bytes | None:
        """The Ethernet header towards the peer, if its MAC is known (cached for a
        second, so the ARP cache still sees the entry used and refreshes it), and
        the constant parts of the IPv4 header and of the checksums."""
        iface = self.iface
        self._l2 = None
        if iface.is_local(self.remote):
            return None
        try:
            hop, mac = iface.route(self.remote)
        except OSError:
            return None
        if mac is None:
            mac = iface.arp.lookup(hop, now)
            if mac is None:
                return None
        ttl = self.config.ttl or iface.config.ttl
        tos = self.config.tos
        src, dst = self.local, self.remote
        # version/IHL, TOS | total length, ident (varying) | DF, TTL, protocol | checksum | addresses
        self._ip_mid = struct.pack("!HBB", 0x4000, ttl, PROTO_TCP)
        self._ip_tail = struct.pack("!II", src, dst)
        addresses = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
        self._ip_sum = (0x4500 | tos) + 0x4000 + ((ttl << 8) | PROTO_TCP) + addresses
        self._ph_sum = addresses + PROTO_TCP
        self._ports = self.lport + self.rport
        self._l2 = l2 = iface.l2_header(mac)[len(iface._l2_prefix):] + bytes([0x45, tos])
        self._l2_until = now + 1.0
        return l2

    def _advertise(self) -> int:
        """The window field for an outgoing segment.  RCV.ADV, the right edge we
        offered, never moves back (RFC 9293 §3.8.6.2.2 "shrinking the window is strongly discouraged")
        and moves forward only by a useful amount (receiver SWS avoidance, same
        section: at least min(RCV.BUFF/2, Eff.snd.MSS)).  Scaled, the field rounds
        down, so the edge the peer sees may lie up to 2**shift - 1 bytes short of
        RCV.ADV (RFC 7323 §2.4); rounding up instead would let a peer sending
        small segments creep the edge past the buffer.  RCV.ADV stays what we
        offered: data up to it is taken, and ACKs starting at it count."""
        rn = self.rcv_nxt
        shift = self.rcv_wscale
        free = self._window_to_advertise()
        current = self.rcv_adv - rn
        if current < 0:
            current = 0
        if free - current >= min(self.config.rcvbuf >> 1, self.snd_mss):
            field = min(free >> shift, 65535)
            if (field << shift) > current:
                self.rcv_adv = rn + (field << shift)
                return field
        return min(current >> shift, 65535)

    def _sack_option(self, max_blocks: int) -> bytes:
        """RFC 2018 §4: the first block MUST be the one holding the segment that triggered
        this ACK (the latest stored); the others follow, highest first."""
        latest = self._ooo_last
        blocks = [b for b in self._ooo if b[0] == latest]
        blocks += [b for b in reversed(self._ooo) if b[0] != latest]
        del blocks[max_blocks:]
        out = bytearray(b"\x01\x01\x05")
        out.append(2 + 8 * len(blocks))
        for s, d in blocks:
            out += _SACK_BLOCK.pack(wrap(s), wrap(s + len(d)))
        return bytes(out)

    def _ts_now(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & 0xFFFFFFFF

    def _ts_rtt(self, tsecr: int, now: float) -> float:
        return ((self._ts_now(now) - tsecr) & 0xFFFFFFFF) / 1000.0

    # ================================================================== timers

    def deadline(self) -> float | None:
        best = self._rto_at
        t = self._delack_at
        if t is not None and (best is None or t < best):
            best = t
        for t in (self._persist_at, self._keepalive_at, self._timewait_at, self._linger_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _arm(self, when: float) -> None:
        """One timer was just set to ``when``: the heap needs a new entry only if that
        is earlier than the armed one (a later deadline is found when the armed entry
        fires, see iface.timers) — so re-arming the RTO or delayed-ACK timer on every
        segment costs two comparisons."""
        armed = self.timer_armed
        if armed is None or when < armed:
            self._timers_changed()

    def _timers_changed(self) -> None:
        if self.config.keepalive and self.state == ESTABLISHED and self._keepalive_at is None:
            self._keepalive_at = self._last_rx + self.config.keepalive_idle
        self.iface.timers.update(self)

    def _arm_rto(self, now: float) -> None:
        self._rto_at = now + self.rtt.rto
        self._rtt_time = now
        self._timers_changed()

    def _arm_persist(self, now: float) -> None:
        if self._persist_at is None and self.snd_una == self.snd_nxt:
            self._persist_at = now + self.rtt.rto * (1 << min(self._persist_probes, 10))
            self._persist_at = min(self._persist_at, now + self.config.rto_max)
            self._timers_changed()

    def on_timer(self, now: float) -> None:
        if self._timewait_at is not None and now >= self._timewait_at:
            self._to_closed(None)
            return
        if self._linger_at is not None and now >= self._linger_at:
            self.stats.drop("tcp_fin_wait2_timeout")
            self._to_closed(None)
            return
        if self._delack_at is not None and now >= self._delack_at:
            self._delack_at = None
            if self.state not in (CLOSED, SYN_SENT):
                self._send_ack(now)
        if self._rto_at is not None and now >= self._rto_at:
            self._rto_at = None
            self._on_rto(now)
            if self.state == CLOSED:
                return
        if self._persist_at is not None and now >= self._persist_at:
            self._persist_at = None
            self._on_persist(now)
            if self.state == CLOSED:
                return
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._keepalive_at = None
            self._on_keepalive(now)
            if self.state == CLOSED:
                return
        self._timers_changed()

    def _on_rto(self, now: float) -> None:
        """RFC 6298 §5.4-5.7: retransmit the earliest unacknowledged segment, back off."""
        st = self.state
        if self.snd_una >= self.snd_max and st not in (SYN_SENT, SYN_RECEIVED):
            return
        self.retries += 1
        self._rexmits += 1
        self.stats.drop("tcp_rto")
        limit = self.config.syn_retries if st in (SYN_SENT, SYN_RECEIVED) else self.config.max_retries
        if self.retries > limit:
            if st == SYN_RECEIVED and self._passive:
                self._to_closed(None)
            else:
                self._to_closed(errno.ETIMEDOUT)
            return
        self.rtt.back_off()
        self._rtt_seq = None  # Karn: no sample from a retransmitted segment
        if st in (SYN_SENT, SYN_RECEIVED):
            self._send_syn(now)
        else:
            flight = self.snd_max - self.snd_una
            self.cc.on_timeout(flight, now)
            self.in_recovery = False
            self.dupacks = 0
            self.recover = self.snd_max
            self._sacked = []  # RFC 6675 §5.1: the receiver may have reneged
            self.high_sacked = self.snd_una
            self.snd_nxt = self.snd_una  # go back N
            if not self._output(now):
                self._retransmit_one(self.snd_una, now)
        self._rto_at = now + self.rtt.rto
        self._timers_changed()

    def _on_persist(self, now: float) -> None:
        """Zero-window probe (RFC 9293 §3.8.6.1), with exponential backoff.  The probe
        is an ACK below the window, which any TCP must answer with its window."""
        if self.snd_wnd > 0 and self.snd_una + self.snd_wnd > self.snd_nxt:
            # RFC 9293 §3.8.6.2.1, the SWS override timeout: the window is open but smaller
            # than sender SWS avoidance waits for.  Send what fits: it doubles as the probe
            # for a window update that may have been lost, after which nothing else would
            # ever be sent (found by tests/test_reliability_edges.py).
            n = min(self.snd_una + self.snd_wnd - self.snd_nxt, self._data_end() - self.snd_nxt, self._data_mss())
            if n > 0 and self.state in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, LAST_ACK, CLOSING):
                self._send_data(self.snd_nxt, n, now)
            else:
                self.iface.want_output(self)
            return
        if self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, LAST_ACK, CLOSING):
            return
        self._persist_probes += 1  # the backoff exponent
        # RFC 1122 §4.2.2.17: while the peer answers the probes, the connection MUST stay
        # open however long the window stays shut; only unanswered probes count.
        self._persist_unanswered += 1
        if self._persist_unanswered > self.config.max_retries + 3:
            self._to_closed(errno.ETIMEDOUT)
            return
        self._emit(self.snd_una - 1, self.rcv_nxt, ACK, b"", now)
        self._persist_at = now + min(self.rtt.rto * (1 << min(self._persist_probes, 10)), self.config.rto_max)

    def _on_keepalive(self, now: float) -> None:
        """RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: probe an idle connection."""
        if not self.config.keepalive or self.state != ESTABLISHED:
            return
        idle = now - self._last_rx
        if idle < self.config.keepalive_idle:
            self._keepalive_at = self._last_rx + self.config.keepalive_idle
            return
        if self._keepalive_probes >= self.config.keepalive_count:
            self._to_closed(errno.ETIMEDOUT)
            return
        self._keepalive_probes += 1
        self._emit(self.snd_una - 1, self.rcv_nxt, ACK, b"", now)
        self._keepalive_at = now + self.config.keepalive_interval

    # ================================================================== endings

    def _enter_time_wait(self, now: float) -> None:
        self.state = TIME_WAIT
        self._rto_at = None
        self._persist_at = None
        self._keepalive_at = None
        self._linger_at = None
        self._delack_at = None
        self._timewait_at = now + 2 * self.config.msl
        self._timers_changed()
        self._notify()

    def _to_closed(self, err: int | None) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        if err is not None:
            self.error = err
        self._rto_at = self._delack_at = self._persist_at = self._keepalive_at = None
        self._timewait_at = self._linger_at = None
        self._ooo = []
        if err is not None:
            self._sbuf = bytearray()
            self._sbuf_start = 0
        self.table.remove(self)
        self._notify()

    def icmp_error(self, icmp_type: int, code: int, mtu: int, now: float) -> None:
        """RFC 1122 §4.2.3.9 / RFC 5927: soft errors; RFC 1191: PMTU decrease."""
        if icmp_type == 3 and code == 4 and mtu >= 68:
            new_mss = mtu - 40 - (12 if self.ts_ok else 0)
            if 64 <= new_mss < self.snd_mss:
                self.snd_mss = new_mss
                self.cc.set_mss(new_mss)
                # retransmit what was too big (RFC 1191 §6.5)
                self.snd_nxt = self.snd_una
                self.iface.want_output(self)
            return
        if self.state == SYN_SENT and icmp_type == 3 and code in (2, 3):
            self._to_closed(errno.ECONNREFUSED)

    def __repr__(self) -> str:
        return (f"<TcpConnection {self.local_address[0]}:{self.lport} -> {self.remote_address[0]}:{self.rport} "
                f"{self.state_name}>")


def _first(item: tuple[int, bytes]) -> int:
    return item[0]
