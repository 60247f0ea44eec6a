"""The error types seqs raises, split by whose fault they are (after h11).

``ParseError`` is the only exception a parser may raise on untrusted bytes: the
interface catches it and counts a drop under its ``reason``.  Everything a user
can get wrong at the API raises a ``ValueError``/``OSError`` subclass from the
standard library, so code written against :mod:`socket` keeps working.
"""

from __future__ import annotations

import errno

__all__ = ["ParseError", "SeqsError", "oserror"]


class SeqsError(Exception):
    """Base class of seqs' own exceptions."""


class ParseError(SeqsError, ValueError):
    """Bytes from the network that do not form a valid message.

    ``reason`` is a short stable name (``"ipv4_bad_checksum"``) used as the
    drop counter's key in :class:`seqs.iface.stats.Stats`.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


_MESSAGES = {
    errno.ECONNREFUSED: "Connection refused",
    errno.ECONNRESET: "Connection reset by peer",
    errno.ECONNABORTED: "Software caused connection abort",
    errno.ETIMEDOUT: "Connection timed out",
    errno.EPIPE: "Broken pipe",
    errno.EHOSTUNREACH: "No route to host",
    errno.ENETUNREACH: "Network is unreachable",
    errno.EMSGSIZE: "Message too long",
    errno.ENOTCONN: "Transport endpoint is not connected",
    errno.EADDRINUSE: "Address already in use",
}

_TYPES: dict[int, type[OSError]] = {
    errno.ECONNREFUSED: ConnectionRefusedError,
    errno.ECONNRESET: ConnectionResetError,
    errno.ECONNABORTED: ConnectionAbortedError,
    errno.ETIMEDOUT: TimeoutError,
    errno.EPIPE: BrokenPipeError,
}


def oserror(code: int, detail: str | None = None) -> OSError:
    """The stdlib exception the kernel's socket API would raise for ``code``."""
    cls = _TYPES.get(code, OSError)
    return cls(code, detail or _MESSAGES.get(code, errno.errorcode.get(code, "error")))
