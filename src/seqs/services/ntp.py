"""A sans-IO NTP client (RFC 5905, client mode): measure the offset to one server.

``NtpQuery(stack, "10.0.0.1", wall_offset=...)`` sends ``samples`` requests,
one at a time, ``interval`` seconds apart, each waiting at most ``timeout``
for its reply, and keeps the sample with the lowest round-trip delay (the
clock filter's rule, RFC 5905 §10: the least-delayed sample is the least
disturbed by queueing).  It then completes like a DNS query: poll ``done`` or
set ``on_done``; :meth:`NtpQuery.result` returns the best :class:`NtpSample`
or raises an :class:`NtpError` (:class:`KissOfDeath`, :class:`Unsynchronized`,
:class:`NtpTimeout`).  It only measures: setting the clock is not its job.

**Wall-clock time.**  The core never reads a clock, and the stack's ``now`` is
monotonic; NTP needs the wall clock (T1 and T4).  The driver passes
``wall_offset``, wall-clock seconds minus the stack's clock, and the client
uses ``wall = now + wall_offset``.  A runtime whose stack clock is
``time.monotonic()`` passes ``time.time() - time.monotonic()``, taken once
when the query starts; a virtual network passes its epoch.

For one sample, with T1 our transmit time, T2 the server's receive time, T3 its
transmit time and T4 our receive time (RFC 5905 §8):

    offset θ = ((T2 - T1) + (T3 - T4)) / 2        (server clock minus ours)
    delay  δ = (T4 - T1) - (T3 - T2)

A reply is used only if it is a server-mode reply (RFC 5905 §8, mode 4) to the
request we sent last — its origin timestamp must equal that request's
transmit timestamp, which here is a random nonce (as chrony and the NTP
data-minimization draft do: it keeps off-path forgeries out and reveals
nothing about our clock) — and the server is synchronized: leap indicator 3
or stratum 0 or ≥ 16 is rejected (RFC 5905 §7.3).  A kiss-o'-death (stratum 0)
with code DENY, RSTR or RATE ends the query at once (RFC 5905 §7.4: stop
sending to that server).  Every rejected reply is counted in
``stack.stats.drops`` (``ntp_bogus_origin``, ``ntp_bad_mode``,
``ntp_unsynchronized``, ...); nothing a server sends can raise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ParseError, SeqsError
from ..stack import Stack
from ..wire import ntp as wntp
from ..wire.ntp import NtpPacket, NtpView

__all__ = ["KissOfDeath", "NtpConfig", "NtpError", "NtpQuery", "NtpSample", "NtpTimeout", "Unsynchronized"]

_FRAC = 1 << 32
#: kiss codes that end the conversation (RFC 5905 §7.4)
STOP_CODES = frozenset({"DENY", "RSTR", "RATE"})


class NtpError(SeqsError, OSError):
    def __init__(self, message: str, *, server: str = "") -> None:
        super().__init__(message)
        self.server = server


class KissOfDeath(NtpError):
    """The server sent a kiss-o'-death packet; ``code`` is its kiss code."""

    def __init__(self, message: str, *, server: str = "", code: str = "") -> None:
        super().__init__(message, server=server)
        self.code = code


class Unsynchronized(NtpError):
    """The server answered, but says its own clock is not synchronized."""


class NtpTimeout(NtpError, TimeoutError):
    """No usable reply to any request."""


@dataclass(slots=True)
class NtpConfig:
    samples: int = 4
    #: seconds between requests (RFC 5905 §7.3's minimum poll is 16 s; a one-shot
    #: measurement like ntpdate -q sends a short burst instead)
    interval: float = 1.0
    #: seconds to wait for each reply
    timeout: float = 1.0
    port: int = 123
    version: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.samples <= 64:
            raise ValueError("samples must be 1..64")
        if self.interval < 0 or self.timeout <= 0:
            raise ValueError("interval must not be negative and timeout must be positive")
        if self.version not in (3, 4):
            raise ValueError("NTP version must be 3 or 4")


@dataclass(frozen=True, slots=True)
class NtpSample:
    """One request/reply exchange.  Times are Unix seconds; offset and delay seconds."""

    offset: float
    delay: float
    stratum: int
    leap: int
    ref_id: bytes
    root_delay: float
    root_dispersion: float
    t1: float
    t2: float
    t3: float
    t4: float

    @property
    def ref_text(self) -> str:
        """The reference id as ntpq shows it: ASCII at stratum 0-1 when it is text
        (RFC 5905 §7.3: "GPS", "PPS"...), else a dotted quad (chrony's local
        reference is 127.127.1.1)."""
        text = self.ref_id.rstrip(b"\0")
        if self.stratum <= 1 and text and all(0x20 < b < 0x7F for b in text):
            return text.decode("ascii")
        return str(ipaddress.IPv4Address(self.ref_id))


def offset_delay(t1: int, t2: int, t3: int, t4: int) -> tuple[float, float]:
    """RFC 5905 §8 on era-resolved timestamps in 2^-32 s: (offset θ, delay δ) in seconds.

    Integers keep the differences exact; a float of ~2^31 seconds has only
    about half a microsecond of resolution left.
    """
    offset = ((t2 - t1) + (t3 - t4)) / 2 / _FRAC
    delay = ((t4 - t1) - (t3 - t2)) / _FRAC
    return offset, delay


class NtpQuery:
    """Measure the offset to ``server``; starts at once (see the module docstring).

    Readable at any time: ``done``, ``error``, ``samples`` (accepted, in order),
    ``best``, ``sent``.
    """

    __slots__ = (
        "_event_queued", "_last_sent", "_next_send", "_outstanding", "_reply_by", "_sock", "best", "config", "done",
        "error", "last_rejection", "on_done", "samples", "sent", "server", "stack", "timer_armed",
        "wall_offset",
    )

    def __init__(self, stack: Stack, server: str, *, wall_offset: float, config: NtpConfig | None = None,
                 on_done: Callable[[NtpQuery], None] | None = None) -> None:
        self.stack = stack
        self.server = server
        self.wall_offset = wall_offset
        self.config = config or NtpConfig()
        self.on_done = on_done
        self.done = False
        self.error: NtpError | None = None
        self.samples: list[NtpSample] = []
        self.best: NtpSample | None = None
        self.sent = 0
        #: why the last reply was refused, for the error message
        self.last_rejection: NtpError | None = None
        self.timer_armed: float | None = None
        self._event_queued = False
        #: (transmit nonce, T1 in 2^-32 s since 1900) of the request awaiting its reply
        self._outstanding: tuple[int, int] | None = None
        self._reply_by: float | None = None
        self._next_send: float | None = None
        self._last_sent = 0.0
        sock = stack.udp_socket()
        sock.connect((server, self.config.port))  # OSError (e.g. ENETUNREACH) to the caller
        sock.on_event = self._on_event
        self._sock = sock
        self._send(stack.iface.now)

    # -- user API -----------------------------------------------------------------------

    def result(self) -> NtpSample:
        if not self.done:
            raise RuntimeError("NTP query still running")
        if self.error is not None:
            raise self.error
        assert self.best is not None
        return self.best

    def cancel(self) -> None:
        if not self.done:
            self._finish(NtpError(f"{self.server}: cancelled", server=self.server))

    # -- timer owner ----------------------------------------------------------------------

    def deadline(self) -> float | None:
        ds = [d for d in (self._reply_by, self._next_send) if d is not None]
        return min(ds) if ds else None

    def on_timer(self, now: float) -> None:
        if self.done:
            return
        if self._reply_by is not None and now >= self._reply_by:
            self._reply_by = None
            self._outstanding = None  # a reply after this would be a replay: dropped as bogus
            self._after_exchange(now)
        if self._next_send is not None and now >= self._next_send:
            self._next_send = None
            self._send(now)

    def _rearm(self) -> None:
        self.stack.iface.timers.update(self)

    # -- flow -----------------------------------------------------------------------------

    def _wall_fixed(self, now: float) -> int:
        """The wall clock at stack time ``now`` in 2^-32 s since 1900 (era-resolved).

        The two terms are scaled apart: their float sum (~2^31 s) would round
        to a quarter of a microsecond, differently for T1 and T4."""
        return round((self.wall_offset + wntp.NTP_UNIX_DELTA) * _FRAC) + round(now * _FRAC)

    def _send(self, now: float) -> None:
        rng = self.stack.iface.rng
        nonce = rng.getrandbits(64) or 1  # 0 would read as "no timestamp" (RFC 5905 §8)
        pkt = NtpPacket(mode=wntp.MODE_CLIENT, version=self.config.version, transmit=nonce)
        try:
            self._sock.send(pkt.emit())
        except OSError as e:
            self.last_rejection = NtpError(f"{self.server}: {e.strerror or e}", server=self.server)
        self.sent += 1
        self._last_sent = now
        self._outstanding = (nonce, self._wall_fixed(now))
        self._reply_by = now + self.config.timeout
        self._rearm()

    def _after_exchange(self, now: float) -> None:
        """A request was answered or timed out: send the next one in time, or finish."""
        self._reply_by = None
        if self.sent >= self.config.samples:
            self._complete()
            return
        self._next_send = max(now, self._last_sent + self.config.interval)
        self._rearm()

    def _on_event(self) -> None:
        sock = self._sock
        stats = self.stack.stats
        while not self.done:
            try:
                got = sock.recvfrom()
            except OSError:
                # ICMP port unreachable: nobody serves NTP there; later requests may still be answered.
                stats.drop("ntp_server_unreachable")
                self.last_rejection = NtpError(f"{self.server}: port {self.config.port} unreachable",
                                               server=self.server)
                continue
            if got is None:
                return
            self._reply(got[0], self.stack.iface.now)

    def _reply(self, data: bytes, now: float) -> None:
        stats = self.stack.stats
        try:
            v = NtpView(data)
        except ParseError as e:
            stats.drop(e.reason)
            return
        if v.mode != wntp.MODE_SERVER:
            stats.drop("ntp_bad_mode")  # RFC 5905 §8: a client takes only server-mode replies
            return
        if not 1 <= v.version <= 4:
            stats.drop("ntp_bad_version")
            return
        out = self._outstanding
        if out is None or v.origin != out[0]:
            # RFC 5905 §8: an origin timestamp other than our last transmit timestamp is
            # "bogus" (a replay, a duplicate, or a forgery).
            stats.drop("ntp_bogus_origin")
            return
        self._outstanding = None
        if v.stratum == wntp.STRATUM_KOD:
            code = v.kiss_code or ""
            if code in STOP_CODES:
                stats.drop("ntp_kiss_of_death")
                self._finish(KissOfDeath(f"{self.server}: kiss-o'-death {code!r}", server=self.server, code=code))
                return
            stats.drop("ntp_unsynchronized")
            self.last_rejection = Unsynchronized(f"{self.server}: stratum 0 (kiss code {code!r})",
                                                 server=self.server)
        elif v.leap == wntp.LEAP_UNSYNCHRONIZED or v.stratum >= wntp.STRATUM_UNSYNCHRONIZED:
            stats.drop("ntp_unsynchronized")
            self.last_rejection = Unsynchronized(
                f"{self.server}: clock not synchronized (leap {v.leap}, stratum {v.stratum})", server=self.server)
        elif v.transmit == 0 or v.receive == 0:
            stats.drop("ntp_bad_timestamps")  # RFC 5905 §8: a zero timestamp is "not valid"
            self.last_rejection = NtpError(f"{self.server}: reply without timestamps", server=self.server)
        else:
            self._sample(v, out[1], now)
        self._after_exchange(now)

    def _sample(self, v: NtpView, t1: int, now: float) -> None:
        t4 = self._wall_fixed(now)
        near = now + self.wall_offset
        # RFC 5905 §6: the server's timestamps are read in the era closest to our clock.
        t2 = wntp.unwrap(v.receive, near)
        t3 = wntp.unwrap(v.transmit, near)
        offset, delay = offset_delay(t1, t2, t3, t4)
        # RFC 5905 Appendix A.5.1.1: the delay is never taken below zero (clock granularity).
        delay = max(delay, 0.0)

        def unix(t: int) -> float:
            return t / _FRAC - wntp.NTP_UNIX_DELTA

        self.samples.append(NtpSample(
            offset, delay, v.stratum, v.leap, v.ref_id, wntp.short_to_seconds(v.root_delay),
            wntp.short_to_seconds(v.root_dispersion), unix(t1), unix(t2), unix(t3), unix(t4),
        ))

    def _complete(self) -> None:
        if self.samples:
            self.best = min(self.samples, key=lambda s: s.delay)
            self._finish(None)
            return
        err = self.last_rejection
        if err is None:
            err = NtpTimeout(f"{self.server}: no reply to {self.sent} requests", server=self.server)
        elif not isinstance(err, Unsynchronized):
            err = NtpTimeout(f"{err} (no usable reply to {self.sent} requests)", server=self.server)
        self._finish(err)

    def _finish(self, error: NtpError | None) -> None:
        if self.done:
            return
        self.done = True
        self.error = error
        self._reply_by = self._next_send = None
        self._outstanding = None
        self._sock.on_event = None
        self._sock.close()
        if not self._event_queued:
            self._event_queued = True
            self.stack.iface.ready.append(self._fire)

    def _fire(self) -> None:
        self._event_queued = False
        cb = self.on_done
        if cb is not None:
            cb(self)
