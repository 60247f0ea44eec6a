"""Segment traces drawn the way RFC 9293 draws them (§3.5, figures 6-13):

    10.0.0.1:40000>10.0.0.2:80 ESTABLISHED --> <SEQ=101><ACK=301><CTL=PSH,ACK><WND=502><DATA=5>
    10.0.0.1:40000>10.0.0.2:80 ESTABLISHED <-- <SEQ=301><ACK=106><CTL=FIN,ACK><WND=502>
    10.0.0.1:40000>10.0.0.2:80 ESTABLISHED -> CLOSE-WAIT

Set ``stack.tcp.tracer`` to any callable taking a line (``print``, a logger
method) to get one line per segment in and out, in the order they happen,
and one per state change a received segment caused.  Costs nothing when unset.
"""

from __future__ import annotations

from collections.abc import Callable

from ..wire import tcp as wtcp

__all__ = ["Tracer", "describe"]

Tracer = Callable[[str], None]


def describe(seq: int, ack: int, flags: int, window: int, datalen: int) -> str:
    out = f"<SEQ={seq}>"
    if flags & wtcp.ACK:
        out += f"<ACK={ack}>"
    out += f"<CTL={wtcp.flags_to_str(flags)}><WND={window}>"
    if datalen:
        out += f"<DATA={datalen}>"
    return out


def describe_bytes(segment: bytes | bytearray | memoryview) -> str:
    _sp, _dp, seq, ack, off, flags, window, _ck, _urg = wtcp.HDR.unpack_from(segment, 0)
    return describe(seq, ack, flags, window, len(segment) - ((off >> 4) << 2))
